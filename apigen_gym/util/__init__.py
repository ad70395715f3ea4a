"""Small helpers with no knowledge of the project: JSON I/O (atomic writes, JSONL), the background event
loop, the version. Imports nothing from the other rooms.
"""
