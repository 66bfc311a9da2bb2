"""omniq.workers (in progress)"""
