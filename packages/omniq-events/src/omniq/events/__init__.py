"""omniq.events (in progress)"""
