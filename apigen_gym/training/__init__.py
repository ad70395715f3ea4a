"""What RL trainers consume: grouped rollouts of one task with any policy, and episodes rendered as
token ids with a loss mask. Framework-free (the tokenizer is passed in). May import evaluation, players,
llm, core and util.
"""
