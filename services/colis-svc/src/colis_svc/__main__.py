from colis_svc.main import run

run()
