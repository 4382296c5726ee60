/**
 * The runtime side of the editor plugin that adds the "Client Registry" sidebar tab (package.json
 * `node-red.plugins`). Node-RED loads a plugin's .html into the editor once, before the nodes'
 * .html files: registry-sidebar.html loads the editor bundles from resources/. The runtime has
 * nothing to do here (the admin routes are registered by the nodes, see nodes/lib/admin-routes).
 */
export = function registrySidebar(): void {
  // no runtime part
};
