from aggregator import create_app

app = create_app()
