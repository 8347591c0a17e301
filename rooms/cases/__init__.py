"""Cases: a case and its members, roles and invitations, its data key, its live sessions
(main room, breakout rooms, waiting area) and closing it (crypto-shredding)."""
