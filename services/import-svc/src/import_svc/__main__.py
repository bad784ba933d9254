from import_svc.main import run

run()
