"""The compatibility matrix: result model, collection across workers, JSON, HTML, merge, diff."""
