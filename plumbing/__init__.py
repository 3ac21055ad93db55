"""Plumbing shared by the agent, the collector and the CLI: config loading and its errors,
secrets, the MQTT endpoint model, durable SQLite files, backoff, where the data files are.

It imports nothing of kienco's other packages except the contract.
"""
