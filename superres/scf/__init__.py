"""A local stand-in for the SCF side: serverless.yml, a warm function container, the COS trigger."""
