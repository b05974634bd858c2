"""What a run publishes: the HTML report, its interactive views, the public export, screenshots."""
