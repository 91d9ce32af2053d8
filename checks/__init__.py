"""Checks on what agents write, without an LLM: what a revision must keep of the version before
it. Imports only ``core``.
"""
