/**
 * Editor helpers shared by the client registry nodes' edit dialogs and node buttons. Loaded by
 * <script src="resources/node-red-contrib-client-registry/client-registry-editor.js"> from the
 * nodes' .html files (Node-RED runs it before the rest of each .html); defines
 * window.ClientRegistryEditor once however often it is loaded.
 *
 *   canWrite()                                may this editor user change the client registry?
 *   rolePicker(options)                       the role list of registry-user and registry-requests
 *   nodeButton(action)                        a node's `button` property, as the inject button's
 *   callButton(node, body, success, failure)  POST to the node's button route
 *
 * The role list's rules are in client-registry-editor.css (loaded here); its strings come from
 * the calling node's catalog (the `t` it passes in), so each node keeps its own keys. The buttons
 * use Node-RED's own messages, as the inject button does.
 */
(function () {
    "use strict";

    if (window.__clientRegistryEditorLoaded) {
        return;
    }
    window.__clientRegistryEditorLoaded = true;

    // the role list's rules (client-registry-editor.css), once for every node using it
    $("<link/>", { rel: "stylesheet", type: "text/css", href: (RED.settings.apiRootUrl || "") + "resources/node-red-contrib-client-registry/client-registry-editor.css" }).appendTo("head");

    /** May this editor user change the client registry? (No adminAuth: yes.) */
    function canWrite() {
        return !RED.user || typeof RED.user.hasPermission !== "function" || RED.user.hasPermission("client-registry.write");
    }

    /** The names of the registry-role config nodes in the workspace, sorted, once each. */
    function workspaceRoles() {
        var names = [];
        RED.nodes.eachConfig(function (n) {
            if (n.type === "registry-role" && n.name && names.indexOf(n.name) === -1) {
                names.push(n.name);
            }
        });
        return names.sort(function (a, b) {
            return a.localeCompare(b);
        });
    }

    /** Roles as stored: a list of distinct, trimmed, non-empty names. */
    function roleList(value) {
        var items = Array.isArray(value) ? value : typeof value === "string" ? value.split(",") : [];
        var names = [];
        items.forEach(function (r) {
            var name = String(r).trim();
            if (name !== "" && names.indexOf(name) === -1) {
                names.push(name);
            }
        });
        return names;
    }

    /**
     * A list of role names: one row per role, typed (with autocomplete) or picked from the
     * workspace's registry-role nodes; rows naming a role not defined here are marked.
     *
     * options.list    selector of the <ol> that becomes the editableList
     * options.picker  selector of the element holding the quick-pick buttons
     * options.prefix  the node type: CSS classes <prefix>-role-row, -role-name, -role-external,
     *                 -pick, -none; catalog keys <prefix>.label.addRole, .label.role,
     *                 .label.grant, .label.noRoles, .placeholder.role, .tip.external
     * options.t       the node's catalog function, t(key, params)
     * options.roles   the stored roles to start with (an array, or a comma-separated string)
     *
     * Returns { names() }: the list as it is now, as roleList() stores it.
     */
    function rolePicker(options) {
        var prefix = options.prefix;
        var t = options.t;
        var list = $(options.list);
        var picker = $(options.picker).empty();
        var known = workspaceRoles();

        function rowNames() {
            return list.editableList("items").map(function () {
                return $(this).find("." + prefix + "-role-name").val();
            }).get();
        }

        function currentNames() {
            return rowNames().map(function (name) {
                return name.trim();
            });
        }

        /** Marks rows naming a role not defined here, and greys out the roles already granted. */
        function refresh() {
            var names = currentNames();
            list.editableList("items").each(function () {
                var name = $(this).find("." + prefix + "-role-name").val().trim();
                $(this).find("." + prefix + "-role-external").toggle(name !== "" && known.indexOf(name) === -1);
            });
            picker.children("button").each(function () {
                $(this).prop("disabled", names.indexOf($(this).data("role")) !== -1);
            });
        }

        list.editableList({
            addButton: t(prefix + ".label.addRole"),
            height: "auto",
            sortable: true,
            removable: true,
            removeItem: function () {
                refresh();
            },
            addItem: function (row, index, data) {
                row.addClass(prefix + "-role-row");
                var input = $("<input/>", { type: "text", class: prefix + "-role-name", "aria-label": t(prefix + ".label.role") })
                    .attr("placeholder", t(prefix + ".placeholder.role"))
                    .val(data.name || "")
                    .appendTo(row);
                var external = $("<i/>", { class: "fa fa-info-circle " + prefix + "-role-external" }).hide().appendTo(row);
                RED.popover.tooltip(external, t(prefix + ".tip.external"));
                input.autoComplete({
                    minLength: 0,
                    search: function (value) {
                        var text = value.trim().toLowerCase();
                        var taken = currentNames();
                        return known.filter(function (name) {
                            return name.toLowerCase().indexOf(text) !== -1 && (name === value.trim() || taken.indexOf(name) === -1);
                        });
                    }
                });
                input.on("change input", refresh);
                setTimeout(refresh, 0);
                if (!data.name) {
                    input.trigger("focus");
                }
            }
        });
        roleList(options.roles).forEach(function (name) {
            list.editableList("addItem", { name: name });
        });

        if (known.length === 0) {
            $("<span/>", { class: prefix + "-none" }).text(t(prefix + ".label.noRoles")).appendTo(picker);
        }
        known.forEach(function (name) {
            $("<button/>", { type: "button", class: "red-ui-button red-ui-button-small " + prefix + "-pick" })
                .data("role", name)
                .append($("<i/>", { class: "fa fa-plus" }), " ", $("<span/>").text(name))
                .attr("aria-label", t(prefix + ".label.grant", { role: name }))
                .on("click", function (evt) {
                    evt.preventDefault();
                    if (currentNames().indexOf(name) === -1) {
                        list.editableList("addItem", { name: name });
                    }
                })
                .appendTo(picker);
        });
        refresh();

        return {
            names: function () {
                return roleList(rowNames());
            }
        };
    }

    /** As the inject button reports a failure, with the server's message when it sent one. */
    function notifyFailure(jqXHR, textStatus) {
        var message;
        if (jqXHR.status === 404 && !(jqXHR.responseJSON && jqXHR.responseJSON.error && jqXHR.responseJSON.error !== "not deployed")) {
            message = RED._("node-red:common.notification.errors.not-deployed");
        } else if (jqXHR.status === 0) {
            message = RED._("node-red:common.notification.errors.no-response");
        } else if (jqXHR.responseJSON && typeof jqXHR.responseJSON.error === "string") {
            message = RED.utils.sanitize(jqXHR.responseJSON.error);
        } else {
            message = RED._("node-red:common.notification.errors.unexpected", { status: jqXHR.status, message: RED.utils.sanitize(String(textStatus || "")) });
        }
        RED.notify(RED._("node-red:common.notification.error", { message: message }), "error");
    }

    /**
     * POSTs body (JSON) to the node's button route, client-registry/button/<type>/<id>; on a
     * failure notifies as the inject button does ("not deployed" on 404), then calls failure.
     */
    function callButton(node, body, success, failure) {
        $.ajax({
            url: "client-registry/button/" + node.type + "/" + node.id,
            type: "POST",
            data: JSON.stringify(body),
            contentType: "application/json; charset=utf-8",
            dataType: "json",
            success: success,
            error: function (jqXHR, textStatus) {
                notifyFailure(jqXHR, textStatus);
                if (failure) {
                    failure(jqXHR);
                }
            }
        });
    }

    /**
     * A node's `button` property, as the inject button's: disabled while the node has undeployed
     * edits or the user may not write; a click on an undeployed node warns, otherwise calls
     * action(node).
     */
    function nodeButton(action) {
        return {
            enabled: function () {
                return !this.changed && canWrite();
            },
            onclick: function () {
                if (this.changed) {
                    return RED.notify(RED._("notification.warning", { message: RED._("notification.warnings.undeployedChanges") }), "warning");
                }
                action(this);
            }
        };
    }

    window.ClientRegistryEditor = {
        canWrite: canWrite,
        rolePicker: rolePicker,
        callButton: callButton,
        nodeButton: nodeButton
    };
})();
