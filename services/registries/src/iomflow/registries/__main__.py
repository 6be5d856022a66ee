from iomflow.registries.app import create_app
from iomflow.registries.settings import Settings
from iomflow.shared.entry import service_main

main = service_main("registries", "iomflow.registries", Settings, create_app)

if __name__ == "__main__":
    main(None)
