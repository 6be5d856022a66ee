from iomflow.monitoring.app import create_app
from iomflow.monitoring.settings import Settings
from iomflow.shared.entry import service_main

main = service_main("monitoring", "iomflow.monitoring", Settings, create_app)

if __name__ == "__main__":
    main(None)
