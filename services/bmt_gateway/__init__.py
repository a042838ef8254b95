"""The gateway: one entry point for clients in front of every service."""
