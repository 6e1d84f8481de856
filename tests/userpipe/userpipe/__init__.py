"""A user's project (test fixture): its own SSv2 pipeline, loaded by the suite as a dataset factory."""
