"""Featurizers turn request text into the feature vector a learned router scores."""
