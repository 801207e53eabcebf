"""Durable storage: the asyncpg store, its SQL migrations and the embedded PostgreSQL."""
