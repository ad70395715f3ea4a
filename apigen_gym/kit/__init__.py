"""The kit a domain author uses: task sampling, database generator helpers, the calculator, tools and rules
every domain shares. Imports core and util.
"""
