"""NCF recommender core: MovieLens data layer, models, metrics and evaluation.

Importing this package is cheap: nothing here imports TensorFlow until a Keras model is built.
"""
