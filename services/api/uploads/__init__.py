"""Presigned uploads: announce a model, PUT its archive straight to storage, confirm it into a model."""
