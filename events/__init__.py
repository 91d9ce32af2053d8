"""NATS JetStream: the streams, the publisher of council's events, the planning events the
worker consumes.
"""
