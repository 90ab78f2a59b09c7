"""Strategies pick one candidate. Static ones need no features; learned ones score features."""
