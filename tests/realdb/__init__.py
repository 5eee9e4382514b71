"""Tests against real PostgreSQL and MariaDB servers (marked realdb)."""
