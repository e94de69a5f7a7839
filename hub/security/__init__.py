"""What protects the hub: secrets at rest and their redaction (:mod:`.secrets`), and the
address guard of outgoing requests (:mod:`.netguard`)."""
