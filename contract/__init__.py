"""kienco's wire contract: the messages agents send and the collector publishes, and their topics.

The agent, the collector and the rules import it; it imports none of them.
"""
