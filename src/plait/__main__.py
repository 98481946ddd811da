from plait.cli.main import app

app(prog_name="plait")
