from progress_svc.main import run

run()
