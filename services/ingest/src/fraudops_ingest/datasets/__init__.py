"""Dataset intake: upload or simulate, validate with Great Expectations, store valid rows and quarantine."""
