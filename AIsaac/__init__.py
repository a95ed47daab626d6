"""AIsaac: a PyTorch trainer in which the whole training loop is callbacks."""
__version__ = "0.1.0"
