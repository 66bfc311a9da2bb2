"""omniq.storage (in progress)"""
