from iomflow.diagnostics.app import create_app
from iomflow.diagnostics.settings import Settings
from iomflow.shared.entry import service_main

main = service_main("diagnostics", "iomflow.diagnostics", Settings, create_app)

if __name__ == "__main__":
    main(None)
