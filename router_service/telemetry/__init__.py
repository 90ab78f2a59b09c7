"""Decision events and outcome reports for the closed loop."""
