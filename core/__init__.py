"""The contracts every other home builds on: settings, the request and its limits, the
state's types, the events' shapes, errors, metrics. Imports nothing else of council.
"""
