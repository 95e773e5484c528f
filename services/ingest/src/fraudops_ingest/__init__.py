"""REST intake of transactions, datasets and labels."""
