"""Demo data: `manage.py seed_demo` (seed.py) and the reference data it draws from (data.py)."""
