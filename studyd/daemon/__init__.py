"""The daemon side: workers that claim studies, train trials and record them."""
