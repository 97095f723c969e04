"""A job's report: the data gathered from the lineage and prediction tables, and its HTML."""
