"""Settlement agreements: drafted in a space, signed by every signatory, sealed."""
