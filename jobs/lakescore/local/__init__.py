"""The embedded local world: the demo data and model, and a local Airflow."""
