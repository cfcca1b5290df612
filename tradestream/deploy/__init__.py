"""Deploying to AWS: Lambda zip building (more to come: artifact upload, change sets)."""
