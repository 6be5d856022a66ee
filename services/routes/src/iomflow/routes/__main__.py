from iomflow.routes.app import create_app
from iomflow.routes.settings import Settings
from iomflow.shared.entry import service_main

main = service_main("routes", "iomflow.routes", Settings, create_app)

if __name__ == "__main__":
    main(None)
