"""Card payments of invoices through Stripe: the gateway (the one module that names the
``stripe`` library) and the errors it raises."""
