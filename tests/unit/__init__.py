"""Unit tests of db_pool with fake DB-API modules (no database needed)."""
