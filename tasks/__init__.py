"""NVFlare task folders: the FL code a campaign mutates, one folder per benchmark task."""
