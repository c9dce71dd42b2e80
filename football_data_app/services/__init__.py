"""Write-side services of the football app, one module per concern."""
