"""NCF models (GMF, MLP, NeuMF): configuration (`config`), the `NCFModel` contract (`base`), its trainer
(`trainer`), engine-neutral parameters and scoring, and the Keras and NumPy engines."""
