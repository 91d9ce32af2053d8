"""Calling the agents' models: the client, context-window fitting, prompt files, the stage
call the nodes share.
"""
