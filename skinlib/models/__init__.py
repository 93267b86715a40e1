"""Model builders. Each returns a plain functional Keras model whose input is RGB in [0, 255]."""
