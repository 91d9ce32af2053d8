"""The ``council`` command: what a person types and sees (the top layer: it may use every
other home).
"""
