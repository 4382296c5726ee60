/**
 * The "Client Registry" sidebar tab: the administrator's view of the client registry inside the
 * editor (Connectware's Client Registry and User Management). Loaded by
 * <script src="resources/node-red-contrib-client-registry/client-registry-sidebar.js"> from the
 * nodes' .html files; registers the tab once however often it is loaded.
 *
 * Data: the admin HTTP API under client-registry/ (relative URLs, so the editor's token and
 * custom admin roots work). Live: RED.comms topic "client-registry/update" ({ kind }) refetches
 * what changed; the window's countdown ticks locally. Strings: the registry-broker catalog,
 * section "sidebar". Read-only users (no client-registry.write) get every changing control
 * disabled.
 *
 * Stable selectors (browser tests rely on them):
 *   #red-ui-tab-client-registry              the sidebar tab (RED.sidebar.show("client-registry"))
 *   .cr-sidebar                              the tab's content
 *   .cr-refresh                              refetch everything
 *   .cr-readonly                             shown to read-only users
 *   .cr-error                                registry error (e.g. store unavailable), when there is one
 *   button.cr-window-toggle[data-open]       opens the window for 5 minutes / locks it
 *   .cr-window-state                         "Locked" / "Open"
 *   .cr-window-remaining                     mm:ss left while open
 *   .cr-section[data-section=requests|users|roles|clients|audit]
 *     .cr-section-header                     click: collapse / expand; .cr-count holds the count
 *   .cr-requests-table
 *     tr.cr-request-row[data-request-id][data-username]   click: expand the details row
 *       .cr-pairing-code  .cr-request-flow  .cr-request-client  .cr-request-address
 *       .cr-request-time  .cr-request-csr[data-csr=true|false]
 *       button.cr-approve  button.cr-deny     open the allow / deny panel in the details row
 *     tr.cr-request-details[data-request-id]
 *       .cr-approve-panel input.cr-approve-role[value=<role>]   roles to grant, unchecked at first
 *       .cr-approve-panel button.cr-approve-confirm             POST .../approve { roles }
 *       .cr-deny-panel button.cr-deny-confirm                   POST .../deny
 *       button.cr-cancel                                        closes the panel
 *       .cr-request-context                                     the request's context (JSON)
 *   .cr-requests-empty                       "no pending requests"
 *   button.cr-user-add                       shows the create-user form .cr-user-form:
 *     input.cr-user-form-username  input.cr-user-form-password  input.cr-user-form-role[value]
 *     button.cr-user-form-create  button.cr-cancel
 *   input.cr-user-filter                     shown with more than 100 users (.cr-users-more: how many hidden)
 *   .cr-users-table
 *     tr.cr-user-row[data-username][data-source=flow|registry|api][data-disabled=true|false]
 *       .cr-user-source  .cr-user-roles  .cr-user-prefix  .cr-badge-disabled
 *       button.cr-user-certs                 (count) expands the certificates
 *       button.cr-user-roles-edit            role checkboxes: input.cr-user-role[value], button.cr-user-roles-save
 *       button.cr-user-disable / button.cr-user-enable
 *       button.cr-user-delete                then button.cr-user-delete-confirm
 *       .cr-flow-note                        flow users: read-only ("defined in the flows"), no buttons
 *     tr.cr-user-details[data-username]
 *       .cr-cert[data-fingerprint] button.cr-revoke, then button.cr-revoke-confirm
 *   .cr-role[data-role] (.cr-role-permission rows; a.cr-role-edit opens its config node)
 *   .cr-clients-table tr.cr-client-row[data-client-id][data-username]
 *   .cr-audit-table tr.cr-audit-row[data-action][data-username]
 *   button.cr-ca-download                    downloads the CA certificate (PEM)
 */
(function () {
    "use strict";

    if (window.__clientRegistrySidebarLoaded) {
        return;
    }
    window.__clientRegistrySidebarLoaded = true;

    var CATALOG = "node-red-contrib-client-registry/registry-broker:sidebar.";
    var RESOURCES = "resources/node-red-contrib-client-registry/";
    var UPDATE_TOPIC = "client-registry/update";
    var WINDOW_MINUTES = 5;
    var AUDIT_LIMIT = 20;
    /** users listed at once; with more, a filter appears */
    var USERS_SHOWN = 100;
    var SOURCES = {
        state: "client-registry/state",
        requests: "client-registry/requests",
        users: "client-registry/users",
        roles: "client-registry/roles",
        clients: "client-registry/clients",
        audit: "client-registry/audit?limit=" + AUDIT_LIMIT
    };
    /** what to fetch again for each kind of change the runtime reports */
    var KINDS = {
        window: ["state"],
        request: ["requests", "state"],
        decision: ["requests", "state", "users"],
        users: ["users"],
        roles: ["roles"],
        audit: ["audit"],
        clients: ["clients"]
    };

    /** the data, as last fetched */
    var data = {
        state: null,
        requests: [],
        users: [],
        roles: [],
        clients: [],
        audit: []
    };
    var loaded = {};
    var loadErrors = {};
    var inFlight = {};
    var again = {};
    /** when the window locks, in the browser's clock (fetched remainingMs + now) */
    var deadline = 0;

    /** what the administrator is doing, kept across refreshes */
    var ui = {
        busy: false,
        expandedRequests: {},
        /** { id, kind: "approve" | "deny", roles: { name: true } } */
        requestPanel: null,
        expandedCerts: {},
        /** { username, kind: "roles" | "delete" | "revoke", roles: {}, fingerprint } */
        userPanel: null,
        addingUser: false,
        newUserRoles: {},
        collapsed: {}
    };

    var content;
    var started = false;
    var pendingKinds = {};
    var updateTimer = null;

    function t(key, params) {
        return RED._(CATALOG + key, params);
    }

    /** May this editor user change the client registry? Without adminAuth there are no permissions: yes. */
    function canWrite() {
        return !RED.user || typeof RED.user.hasPermission !== "function" || RED.user.hasPermission("client-registry.write");
    }

    function mmss(ms) {
        var s = Math.max(0, Math.ceil(ms / 1000));
        var m = Math.floor(s / 60);
        s = s % 60;
        return (m < 10 ? "0" : "") + m + ":" + (s < 10 ? "0" : "") + s;
    }

    function fullTime(iso) {
        var d = new Date(iso);
        return isNaN(d.getTime()) ? String(iso || "") : d.toLocaleString();
    }

    /** Short: the time of day today, otherwise the date. */
    function shortTime(iso) {
        var d = new Date(iso);
        if (isNaN(d.getTime())) {
            return String(iso || "");
        }
        if (d.toDateString() === new Date().toDateString()) {
            return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
        }
        return d.toLocaleDateString();
    }

    function byName(a, b) {
        return String(a).localeCompare(String(b));
    }

    function roleNames() {
        return data.roles.map(function (r) {
            return r.name;
        }).sort(byName);
    }

    // ---- HTTP -------------------------------------------------------------------------------------

    /** The server's reason for a failed call, as plain text. */
    function failureText(jqXHR, textStatus) {
        if (jqXHR.responseJSON && typeof jqXHR.responseJSON.error === "string") {
            return jqXHR.responseJSON.error;
        }
        if (jqXHR.status === 0) {
            return RED._("node-red:common.notification.errors.no-response");
        }
        if (jqXHR.status === 401 || jqXHR.status === 403) {
            return t("errors.notPermitted");
        }
        return RED._("node-red:common.notification.errors.unexpected", { status: jqXHR.status, message: String(textStatus || "") });
    }

    function notifyFailure(jqXHR, textStatus) {
        RED.notify(RED._("node-red:common.notification.error", { message: RED.utils.sanitize(failureText(jqXHR, textStatus)) }), "error");
    }

    function notifyDone(key, params) {
        var safe = {};
        Object.keys(params || {}).forEach(function (k) {
            safe[k] = RED.utils.sanitize(String(params[k]));
        });
        RED.notify(t(key, safe), { type: "success", timeout: 2500 });
    }

    /** A change: POST / PUT / DELETE with a JSON body; failures are notified with the server's message. */
    function change(method, url, body, done) {
        ui.busy = true;
        renderAll();
        $.ajax({
            url: url,
            type: method,
            data: body === undefined ? undefined : JSON.stringify(body),
            contentType: "application/json; charset=utf-8",
            dataType: "json",
            success: function (result) {
                ui.busy = false;
                if (done) {
                    done(result);
                }
                renderAll();
            },
            error: function (jqXHR, textStatus) {
                ui.busy = false;
                notifyFailure(jqXHR, textStatus);
                renderAll();
            }
        });
    }

    function fetchSource(name) {
        if (inFlight[name]) {
            again[name] = true;
            return;
        }
        inFlight[name] = true;
        $.ajax({
            url: SOURCES[name],
            type: "GET",
            dataType: "json",
            cache: false,
            success: function (result) {
                data[name] = result;
                loaded[name] = true;
                delete loadErrors[name];
                if (name === "state" && result && result.window) {
                    deadline = result.window.open ? Date.now() + result.window.remainingMs : 0;
                }
            },
            error: function (jqXHR, textStatus) {
                loadErrors[name] = failureText(jqXHR, textStatus);
            },
            complete: function () {
                inFlight[name] = false;
                renderFor(name);
                if (again[name]) {
                    again[name] = false;
                    fetchSource(name);
                }
            }
        });
    }

    function fetchAll() {
        Object.keys(SOURCES).forEach(fetchSource);
    }

    /** Live updates: collect the kinds of change for 200 ms, then fetch what they touch once. */
    function onUpdate(topic, msg) {
        if (!started) {
            return;
        }
        var kind = msg && msg.kind;
        (KINDS[kind] || Object.keys(SOURCES)).forEach(function (name) {
            pendingKinds[name] = true;
        });
        clearTimeout(updateTimer);
        updateTimer = setTimeout(function () {
            var names = Object.keys(pendingKinds);
            pendingKinds = {};
            names.forEach(fetchSource);
        }, 200);
    }

    // ---- small builders --------------------------------------------------------------------------

    /** A button; icon-only buttons get an aria-label and a tooltip. Changing buttons honour read-only. */
    function button(opts) {
        var b = $("<button/>", { type: "button", class: "red-ui-button red-ui-button-small " + (opts.cls || "") });
        if (opts.icon) {
            $("<i/>", { class: "fa " + opts.icon }).appendTo(b);
        }
        if (opts.text) {
            if (opts.icon) {
                b.append(" ");
            }
            $("<span/>").text(opts.text).appendTo(b);
        }
        if (opts.label) {
            b.attr("aria-label", opts.label);
            if (!opts.text) {
                RED.popover.tooltip(b, opts.label);
            }
        }
        if (opts.data) {
            Object.keys(opts.data).forEach(function (k) {
                b.attr("data-" + k, opts.data[k]);
            });
        }
        if ((opts.writes && !canWrite()) || (opts.writes && ui.busy) || opts.disabled) {
            b.prop("disabled", true);
        }
        b.on("click", function (evt) {
            evt.preventDefault();
            evt.stopPropagation();
            if (!b.prop("disabled") && opts.click) {
                opts.click(evt);
            }
        });
        return b;
    }

    function checkbox(cls, value, checked, onChange) {
        var label = $("<label/>", { class: "cr-check" });
        var input = $("<input/>", { type: "checkbox", class: cls, value: value })
            .prop("checked", !!checked)
            .prop("disabled", !canWrite() || ui.busy)
            .on("change", function () {
                onChange(input.prop("checked"));
            })
            .appendTo(label);
        $("<span/>").text(value).appendTo(label);
        return label;
    }

    /** Role checkboxes; `chosen` is { name: true } and is updated as boxes are ticked. */
    function roleChoices(cls, chosen, extra) {
        var box = $("<div/>", { class: "cr-role-choices" });
        var names = roleNames();
        (extra || []).forEach(function (name) {
            if (names.indexOf(name) === -1) {
                names.push(name);
            }
        });
        if (names.length === 0) {
            $("<span/>", { class: "cr-muted" }).text(t("roles.noneDefined")).appendTo(box);
        }
        names.forEach(function (name) {
            var label = checkbox(cls, name, chosen[name], function (on) {
                if (on) {
                    chosen[name] = true;
                } else {
                    delete chosen[name];
                }
            }).appendTo(box);
            if (roleNames().indexOf(name) === -1) {
                label.addClass("cr-role-undefined").attr("title", t("roles.undefined"));
            }
        });
        return box;
    }

    function chosenList(chosen) {
        return Object.keys(chosen).filter(function (k) {
            return chosen[k];
        }).sort(byName);
    }

    function emptyRow(table, cols, text, cls) {
        var tr = $("<tr/>", { class: "cr-empty-row" }).appendTo(table.find("tbody"));
        $("<td/>", { colspan: cols, class: cls || "" }).text(text).appendTo(tr);
    }

    function table(cls, headers) {
        var tbl = $("<table/>", { class: "cr-table " + cls });
        var tr = $("<tr/>").appendTo($("<thead/>").appendTo(tbl));
        headers.forEach(function (h) {
            $("<th/>").text(h).appendTo(tr);
        });
        $("<tbody/>").appendTo(tbl);
        return tbl;
    }

    function detailList(pairs) {
        var dl = $("<dl/>", { class: "cr-details" });
        pairs.forEach(function (p) {
            $("<dt/>").text(p[0]).appendTo(dl);
            var dd = $("<dd/>").appendTo(dl);
            if (p[1] instanceof $) {
                dd.append(p[1]);
            } else {
                dd.text(p[1]);
            }
            if (p[2]) {
                dd.addClass(p[2]);
            }
        });
        return dl;
    }

    function sectionError(box, name) {
        if (loadErrors[name]) {
            $("<div/>", { class: "cr-section-error" }).text(t("errors.load", { error: loadErrors[name] })).prependTo(box);
        }
    }

    // ---- window -----------------------------------------------------------------------------------

    function windowOpen() {
        return deadline > Date.now();
    }

    function renderWindow() {
        var open = windowOpen();
        var toggle = content.find(".cr-window-toggle");
        toggle.attr("data-open", open ? "true" : "false")
            .toggleClass("cr-window-open", open)
            .attr("aria-label", open ? t("window.lockAction") : t("window.openAction", { minutes: WINDOW_MINUTES }))
            .attr("aria-pressed", open ? "true" : "false")
            .prop("disabled", !canWrite() || ui.busy || !loaded.state);
        toggle.find("i").attr("class", "fa " + (open ? "fa-unlock" : "fa-lock"));
        toggle.find(".cr-window-state").text(open ? t("window.open") : t("window.locked"));
        toggle.find(".cr-window-remaining").text(open ? mmss(deadline - Date.now()) : "").toggle(open);
        content.find(".cr-window-hint").text(open ? t("window.openHint") : t("window.lockedHint"));
    }

    function toggleWindow() {
        var open = windowOpen();
        change("POST", "client-registry/window", open ? { open: false } : { open: true, minutes: WINDOW_MINUTES }, function (w) {
            if (data.state) {
                data.state.window = w;
            }
            deadline = w && w.open ? Date.now() + w.remainingMs : 0;
        });
    }

    /** Each second: the countdown; when it runs out, ask the runtime (it locks the window itself). */
    function tick() {
        if (!content) {
            return;
        }
        if (deadline && !windowOpen()) {
            deadline = 0;
            renderWindow();
            fetchSource("state");
            return;
        }
        if (deadline) {
            content.find(".cr-window-remaining").text(mmss(deadline - Date.now()));
        }
    }

    // ---- state: errors, CA, store ---------------------------------------------------------------

    function renderState() {
        var banner = content.find(".cr-error").empty();
        var messages = [];
        if (data.state && data.state.error) {
            messages.push(t("errors.registry", { error: data.state.error }));
        }
        // (caError: when the runtime reports why its CA could not be opened)
        if (data.state && data.state.caError) {
            messages.push(t("errors.ca", { error: data.state.caError }));
        }
        if (loadErrors.state) {
            messages.push(t("errors.load", { error: loadErrors.state }));
        }
        messages.forEach(function (m) {
            $("<div/>").append($("<i/>", { class: "fa fa-exclamation-triangle" }), " ", $("<span/>").text(m)).appendTo(banner);
        });
        banner.toggle(messages.length > 0);
        content.find(".cr-readonly").toggle(!canWrite());

        var info = content.find(".cr-footer-info").empty();
        var s = data.state;
        if (s && s.store) {
            $("<div/>", { class: "cr-store" }).text(t("footer.store", { location: s.store })).appendTo(info);
        }
        if (s && Array.isArray(s.brokers)) {
            var listeners = [];
            s.brokers.forEach(function (b) {
                ["tcp", "tls", "ws"].forEach(function (k) {
                    if (b[k]) {
                        listeners.push(k.toUpperCase() + " " + b[k]);
                    }
                });
                if (b.wsPath) {
                    listeners.push("WS " + b.wsPath);
                }
            });
            $("<div/>", { class: "cr-brokers" }).text(listeners.length ? t("footer.brokers", { listeners: listeners.join(", ") }) : t("footer.noBroker")).appendTo(info);
        }
    }

    function downloadCa() {
        $.ajax({
            url: "client-registry/ca",
            type: "GET",
            dataType: "text",
            cache: false,
            success: function (pem) {
                var blob = new Blob([pem], { type: "application/x-pem-file" });
                var url = URL.createObjectURL(blob);
                var a = $("<a/>", { href: url, download: "client-registry-ca.pem" }).appendTo("body");
                a[0].click();
                a.remove();
                setTimeout(function () {
                    URL.revokeObjectURL(url);
                }, 1000);
            },
            error: function (jqXHR, textStatus) {
                var err = jqXHR.responseText;
                try {
                    err = JSON.parse(jqXHR.responseText).error;
                } catch (e) {
                    /* not JSON */
                }
                jqXHR.responseJSON = { error: err || failureText(jqXHR, textStatus) };
                notifyFailure(jqXHR, textStatus);
            }
        });
    }

    // ---- pending requests -------------------------------------------------------------------------

    function approvePanel(r) {
        var p = ui.requestPanel;
        var panel = $("<div/>", { class: "cr-panel cr-approve-panel" });
        $("<div/>", { class: "cr-panel-title" }).text(t("requests.confirmAllow", { username: r.username, code: r.pairingCode })).appendTo(panel);
        $("<div/>", { class: "cr-panel-label" }).text(t("requests.grantRoles")).appendTo(panel);
        roleChoices("cr-approve-role", p.roles).appendTo(panel);
        if (r.roles && r.roles.length) {
            $("<div/>", { class: "cr-panel-note cr-requested-roles" }).text(t("requests.asksFor", { roles: r.roles.join(", ") })).appendTo(panel);
        }
        $("<div/>", { class: "cr-panel-note" }).text(t("requests.noRolesHint")).appendTo(panel);
        var buttons = $("<div/>", { class: "cr-panel-buttons" }).appendTo(panel);
        button({ cls: "cr-cancel", text: t("cancel"), click: closeRequestPanel }).appendTo(buttons);
        button({
            cls: "primary cr-approve-confirm",
            icon: "fa-check",
            text: t("requests.allow"),
            writes: true,
            click: function () {
                var roles = chosenList(p.roles);
                change("POST", "client-registry/requests/" + encodeURIComponent(r.id) + "/approve", { roles: roles }, function () {
                    notifyDone("requests.allowed", { username: r.username });
                    ui.requestPanel = null;
                    delete ui.expandedRequests[r.id];
                    ["requests", "state", "users", "audit"].forEach(fetchSource);
                });
            }
        }).appendTo(buttons);
        return panel;
    }

    function denyPanel(r) {
        var panel = $("<div/>", { class: "cr-panel cr-deny-panel" });
        $("<div/>", { class: "cr-panel-title" }).text(t("requests.confirmDeny", { username: r.username, code: r.pairingCode })).appendTo(panel);
        var buttons = $("<div/>", { class: "cr-panel-buttons" }).appendTo(panel);
        button({ cls: "cr-cancel", text: t("cancel"), click: closeRequestPanel }).appendTo(buttons);
        button({
            cls: "cr-danger cr-deny-confirm",
            icon: "fa-times",
            text: t("requests.deny"),
            writes: true,
            click: function () {
                change("POST", "client-registry/requests/" + encodeURIComponent(r.id) + "/deny", {}, function () {
                    notifyDone("requests.denied", { username: r.username });
                    ui.requestPanel = null;
                    delete ui.expandedRequests[r.id];
                    ["requests", "state", "audit"].forEach(fetchSource);
                });
            }
        }).appendTo(buttons);
        return panel;
    }

    function closeRequestPanel() {
        ui.requestPanel = null;
        renderAll();
    }

    function openRequestPanel(r, kind) {
        ui.requestPanel = { id: r.id, kind: kind, roles: {} };
        ui.expandedRequests[r.id] = true;
        renderAll();
    }

    function requestDetails(r) {
        var context = r.context === null || r.context === undefined
            ? $("<span/>", { class: "cr-muted" }).text(t("none"))
            : $("<pre/>", { class: "cr-request-context" }).text(JSON.stringify(r.context, null, 2));
        return detailList([
            [t("requests.id"), r.id, "cr-mono"],
            [t("requests.flow"), t("requests.flows." + (r.flow === "rest" ? "rest" : "mqtt"))],
            [t("requests.clientId"), r.clientId || "–", "cr-mono"],
            [t("requests.address"), r.address || "–", "cr-mono"],
            [t("requests.requestedAt"), fullTime(r.requestedAt)],
            [t("requests.lastSeenAt"), fullTime(r.lastSeenAt)],
            [t("requests.expiresAt"), fullTime(r.expiresAt)],
            [t("requests.csr"), r.hasCsr ? t("requests.csrYes") : t("no")],
            [t("requests.requestedRoles"), r.roles && r.roles.length ? r.roles.join(", ") : t("none")],
            [t("requests.context"), context]
        ]);
    }

    function renderRequests() {
        var section = content.find('.cr-section[data-section="requests"]');
        var box = section.find(".cr-section-content").empty();
        section.find(".cr-count").text(loaded.requests ? data.requests.length : "");
        sectionError(box, "requests");
        if (!loaded.requests) {
            return;
        }
        // forget what was open for requests that are gone
        var ids = data.requests.map(function (r) {
            return r.id;
        });
        Object.keys(ui.expandedRequests).forEach(function (id) {
            if (ids.indexOf(id) === -1) {
                delete ui.expandedRequests[id];
            }
        });
        if (ui.requestPanel && ids.indexOf(ui.requestPanel.id) === -1) {
            ui.requestPanel = null;
        }
        if (data.requests.length === 0) {
            $("<div/>", { class: "cr-empty cr-requests-empty" }).text(t("requests.none")).appendTo(box);
            return;
        }
        var tbl = table("cr-requests-table", [t("requests.request"), t("requests.code"), ""]).appendTo(box);
        var body = tbl.find("tbody");
        data.requests.forEach(function (r) {
            var expanded = !!ui.expandedRequests[r.id];
            var row = $("<tr/>", { class: "cr-request-row", "data-request-id": r.id, "data-username": r.username, tabindex: 0 })
                .attr("aria-expanded", expanded ? "true" : "false")
                .toggleClass("cr-expanded", expanded)
                .appendTo(body);
            var who = $("<td/>", { class: "cr-request-main" }).appendTo(row);
            $("<div/>", { class: "cr-request-user" })
                .append($("<i/>", { class: "fa fa-caret-right cr-twistie" }), " ", $("<span/>").text(r.username))
                .appendTo(who);
            // flow · client id · address · time · CSR
            var sub = $("<div/>", { class: "cr-sub" }).appendTo(who);
            $("<span/>", { class: "cr-request-flow", title: t("requests.flow") }).text(r.flow).appendTo(sub);
            if (r.clientId) {
                sub.append(" · ");
                $("<span/>", { class: "cr-request-client cr-mono", title: t("requests.clientId") }).text(r.clientId).appendTo(sub);
            }
            if (r.address) {
                sub.append(" · ");
                $("<span/>", { class: "cr-request-address cr-mono", title: t("requests.address") }).text(r.address).appendTo(sub);
            }
            sub.append(" · ");
            $("<span/>", { class: "cr-request-time", title: fullTime(r.requestedAt) }).text(shortTime(r.requestedAt)).appendTo(sub);
            sub.append(" · ");
            $("<span/>", { class: "cr-request-csr", "data-csr": r.hasCsr ? "true" : "false" }).text(t(r.hasCsr ? "requests.withCsr" : "requests.withoutCsr")).appendTo(sub);
            $("<td/>").append($("<span/>", { class: "cr-pairing-code", title: t("requests.pairingCode") }).text(r.pairingCode)).appendTo(row);
            var actions = $("<td/>", { class: "cr-actions" }).appendTo(row);
            button({ cls: "cr-approve", icon: "fa-check", label: t("requests.allowUser", { username: r.username }), writes: true, click: function () {
                openRequestPanel(r, "approve");
            } }).appendTo(actions);
            button({ cls: "cr-deny", icon: "fa-times", label: t("requests.denyUser", { username: r.username }), writes: true, click: function () {
                openRequestPanel(r, "deny");
            } }).appendTo(actions);

            var toggle = function () {
                if (ui.expandedRequests[r.id]) {
                    delete ui.expandedRequests[r.id];
                    if (ui.requestPanel && ui.requestPanel.id === r.id) {
                        ui.requestPanel = null;
                    }
                } else {
                    ui.expandedRequests[r.id] = true;
                }
                renderAll();
            };
            row.on("click", toggle).on("keydown", function (evt) {
                if (evt.target === row[0] && (evt.key === "Enter" || evt.key === " ")) {
                    evt.preventDefault();
                    toggle();
                }
            });

            if (expanded) {
                var details = $("<tr/>", { class: "cr-request-details", "data-request-id": r.id }).appendTo(body);
                var cell = $("<td/>", { colspan: 3 }).appendTo(details);
                var p = ui.requestPanel;
                if (p && p.id === r.id) {
                    (p.kind === "approve" ? approvePanel(r) : denyPanel(r)).appendTo(cell);
                }
                requestDetails(r).appendTo(cell);
            }
        });
    }

    // ---- users ------------------------------------------------------------------------------------

    function userPanel(u) {
        var p = ui.userPanel;
        var panel = $("<div/>", { class: "cr-panel" });
        var buttons;
        if (p.kind === "roles") {
            panel.addClass("cr-user-roles-panel");
            $("<div/>", { class: "cr-panel-title" }).text(t("users.rolesOf", { username: u.username })).appendTo(panel);
            roleChoices("cr-user-role", p.roles, u.roles).appendTo(panel);
            buttons = $("<div/>", { class: "cr-panel-buttons" }).appendTo(panel);
            button({ cls: "cr-cancel", text: t("cancel"), click: closeUserPanel }).appendTo(buttons);
            button({
                cls: "primary cr-user-roles-save",
                text: t("save"),
                writes: true,
                click: function () {
                    change("PUT", "client-registry/users/" + encodeURIComponent(u.username), { roles: chosenList(p.roles) }, function () {
                        notifyDone("users.updated", { username: u.username });
                        ui.userPanel = null;
                        fetchSource("users");
                    });
                }
            }).appendTo(buttons);
        } else if (p.kind === "delete") {
            panel.addClass("cr-user-delete-panel");
            $("<div/>", { class: "cr-panel-title" }).text(t("users.confirmDelete", { username: u.username })).appendTo(panel);
            buttons = $("<div/>", { class: "cr-panel-buttons" }).appendTo(panel);
            button({ cls: "cr-cancel", text: t("cancel"), click: closeUserPanel }).appendTo(buttons);
            button({
                cls: "cr-danger cr-user-delete-confirm",
                icon: "fa-trash",
                text: t("users.delete"),
                writes: true,
                click: function () {
                    change("DELETE", "client-registry/users/" + encodeURIComponent(u.username), undefined, function () {
                        notifyDone("users.deleted", { username: u.username });
                        ui.userPanel = null;
                        delete ui.expandedCerts[u.username];
                        fetchSource("users");
                    });
                }
            }).appendTo(buttons);
        }
        return panel;
    }

    function certificates(u) {
        var box = $("<div/>", { class: "cr-certs" });
        $("<div/>", { class: "cr-panel-label" }).text(t("users.certificatesOf", { username: u.username })).appendTo(box);
        (u.certificates || []).forEach(function (c) {
            var line = $("<div/>", { class: "cr-cert", "data-fingerprint": c.fingerprint }).toggleClass("cr-cert-revoked", !!c.revoked).appendTo(box);
            $("<div/>", { class: "cr-mono cr-cert-fingerprint", title: c.fingerprint }).text(c.fingerprint).appendTo(line);
            var meta = $("<div/>", { class: "cr-muted" }).text(t("users.certificateMeta", { serial: c.serial, expires: fullTime(c.expiresAt) })).appendTo(line);
            if (c.revoked) {
                $("<span/>", { class: "cr-badge cr-badge-revoked" }).text(t("users.revoked")).appendTo(meta);
                return;
            }
            var p = ui.userPanel;
            if (p && p.kind === "revoke" && p.username === u.username && p.fingerprint === c.fingerprint) {
                var confirm = $("<div/>", { class: "cr-panel cr-revoke-panel" }).appendTo(line);
                $("<div/>", { class: "cr-panel-title" }).text(t("users.confirmRevoke", { username: u.username })).appendTo(confirm);
                var buttons = $("<div/>", { class: "cr-panel-buttons" }).appendTo(confirm);
                button({ cls: "cr-cancel", text: t("cancel"), click: closeUserPanel }).appendTo(buttons);
                button({
                    cls: "cr-danger cr-revoke-confirm",
                    text: t("users.revoke"),
                    writes: true,
                    click: function () {
                        var url = "client-registry/users/" + encodeURIComponent(u.username) + "/certificates/" + encodeURIComponent(c.fingerprint);
                        change("DELETE", url, undefined, function () {
                            notifyDone("users.certificateRevoked", { username: u.username });
                            ui.userPanel = null;
                            fetchSource("users");
                        });
                    }
                }).appendTo(buttons);
            } else {
                button({
                    cls: "cr-revoke",
                    icon: "fa-ban",
                    text: t("users.revoke"),
                    label: t("users.revokeCertificate", { fingerprint: c.fingerprint }),
                    writes: true,
                    data: { fingerprint: c.fingerprint },
                    click: function () {
                        ui.userPanel = { username: u.username, kind: "revoke", fingerprint: c.fingerprint };
                        renderAll();
                    }
                }).appendTo(meta);
            }
        });
        return box;
    }

    function closeUserPanel() {
        ui.userPanel = null;
        renderAll();
    }

    function openUserPanel(u, kind) {
        var roles = {};
        (u.roles || []).forEach(function (r) {
            roles[r] = true;
        });
        ui.userPanel = { username: u.username, kind: kind, roles: roles };
        renderAll();
    }

    function userForm(box) {
        var form = $("<div/>", { class: "cr-panel cr-user-form" }).appendTo(box);
        $("<div/>", { class: "cr-panel-title" }).text(t("users.addTitle")).appendTo(form);
        var username = $("<input/>", { type: "text", class: "cr-user-form-username", spellcheck: "false", "aria-label": t("users.username") })
            .attr({ autocomplete: "off", placeholder: t("users.username") })
            .appendTo($("<div/>", { class: "cr-form-row" }).appendTo(form));
        var password = $("<input/>", { type: "password", class: "cr-user-form-password", "aria-label": t("users.password") })
            .attr({ autocomplete: "new-password", placeholder: t("users.password") })
            .appendTo($("<div/>", { class: "cr-form-row" }).appendTo(form));
        $("<div/>", { class: "cr-panel-label" }).text(t("users.roles")).appendTo(form);
        roleChoices("cr-user-form-role", ui.newUserRoles).appendTo(form);
        var buttons = $("<div/>", { class: "cr-panel-buttons" }).appendTo(form);
        button({
            cls: "cr-cancel",
            text: t("cancel"),
            click: function () {
                ui.addingUser = false;
                ui.newUserRoles = {};
                renderAll();
            }
        }).appendTo(buttons);
        button({
            cls: "primary cr-user-form-create",
            icon: "fa-plus",
            text: t("users.create"),
            writes: true,
            click: function () {
                var name = username.val().trim();
                var body = { username: name, password: password.val(), roles: chosenList(ui.newUserRoles) };
                change("POST", "client-registry/users", body, function () {
                    notifyDone("users.created", { username: name });
                    ui.addingUser = false;
                    ui.newUserRoles = {};
                    fetchSource("users");
                });
            }
        }).appendTo(buttons);
        [username, password].forEach(function (input) {
            input.prop("disabled", !canWrite());
            input.on("keydown", function (evt) {
                if (evt.key === "Enter") {
                    evt.preventDefault();
                    form.find(".cr-user-form-create").trigger("click");
                }
            });
        });
        return form;
    }

    /** The create-user form: built when it appears, kept while it is shown (what was typed stays, focus too). */
    function renderUserForm(section) {
        var holder = section.find(".cr-user-form-holder");
        var form = holder.children(".cr-user-form");
        if (!ui.addingUser) {
            holder.empty();
            return;
        }
        if (form.length === 0) {
            userForm(holder).find(".cr-user-form-username").trigger("focus");
            return;
        }
        form.find(".cr-role-choices").replaceWith(roleChoices("cr-user-form-role", ui.newUserRoles));
        form.find(".cr-user-form-create").prop("disabled", !canWrite() || ui.busy);
    }

    function renderUsers() {
        var section = content.find('.cr-section[data-section="users"]');
        var box = section.find(".cr-users-list").empty();
        section.find(".cr-count").text(loaded.users ? data.users.length : "");
        section.find(".cr-user-add").prop("disabled", !canWrite() || ui.addingUser);
        renderUserForm(section);
        sectionError(box, "users");
        if (!loaded.users) {
            return;
        }
        var names = data.users.map(function (u) {
            return u.username;
        });
        if (ui.userPanel && names.indexOf(ui.userPanel.username) === -1) {
            ui.userPanel = null;
        }
        section.find(".cr-user-filter-row").toggle(data.users.length > USERS_SHOWN);
        var filter = String(section.find(".cr-user-filter").val() || "").trim().toLowerCase();
        var matching = data.users.filter(function (u) {
            return filter === "" || u.username.toLowerCase().indexOf(filter) !== -1;
        }).sort(function (a, b) {
            return byName(a.username, b.username);
        });
        var shown = matching.slice(0, USERS_SHOWN);
        var tbl = table("cr-users-table", [t("users.user"), t("users.roles"), t("users.certificates"), ""]).appendTo(box);
        var body = tbl.find("tbody");
        if (matching.length === 0) {
            emptyRow(tbl, 4, filter === "" ? t("users.none") : t("users.noMatch"), "cr-empty");
        }
        if (matching.length > shown.length) {
            $("<div/>", { class: "cr-note cr-users-more" }).text(t("users.more", { count: matching.length - shown.length })).appendTo(box);
        }
        shown.forEach(function (u) {
            var fromFlow = u.source === "flow";
            var row = $("<tr/>", { class: "cr-user-row", "data-username": u.username, "data-source": u.source, "data-disabled": u.disabled ? "true" : "false" })
                .toggleClass("cr-user-is-disabled", !!u.disabled)
                .appendTo(body);
            var who = $("<td/>", { class: "cr-user-main" }).appendTo(row);
            var name = $("<div/>", { class: "cr-user-name" }).append($("<span/>").text(u.username)).appendTo(who);
            if (u.disabled) {
                name.append(" ", $("<span/>", { class: "cr-badge cr-badge-disabled" }).text(t("users.disabled")));
            }
            // source · prefix · (flow users) defined in the flows
            var sub = $("<div/>", { class: "cr-sub" }).appendTo(who);
            $("<span/>", { class: "cr-user-source", title: t("users.source") })
                .text(t("users.sources." + (["flow", "registry", "api"].indexOf(u.source) !== -1 ? u.source : "api")))
                .appendTo(sub);
            if (u.publishPrefix) {
                sub.append(" · ");
                $("<span/>", { class: "cr-user-prefix", title: t("users.prefix") })
                    .append($("<span/>").text(t("users.prefix") + " "), $("<span/>", { class: "cr-mono" }).text(u.publishPrefix))
                    .appendTo(sub);
            }
            if (fromFlow) {
                sub.append(" · ");
                $("<span/>", { class: "cr-flow-note" }).text(t("users.flowNote")).appendTo(sub);
            }
            $("<td/>", { class: "cr-user-roles" }).text(u.roles && u.roles.length ? u.roles.join(", ") : "–").appendTo(row);
            var certs = $("<td/>", { class: "cr-user-certs-cell" }).appendTo(row);
            var count = (u.certificates || []).length;
            if (count > 0) {
                var active = u.certificates.filter(function (c) {
                    return !c.revoked;
                }).length;
                button({
                    cls: "cr-user-certs",
                    icon: "fa-certificate",
                    text: String(count),
                    label: t("users.showCertificates", { count: count, active: active }),
                    click: function () {
                        if (ui.expandedCerts[u.username]) {
                            delete ui.expandedCerts[u.username];
                        } else {
                            ui.expandedCerts[u.username] = true;
                        }
                        renderAll();
                    }
                }).attr("aria-expanded", ui.expandedCerts[u.username] ? "true" : "false").appendTo(certs);
            } else {
                certs.text("0");
            }
            var actions = $("<td/>", { class: "cr-actions" }).appendTo(row);
            if (!fromFlow) {
                button({ cls: "cr-user-roles-edit", icon: "fa-id-badge", label: t("users.editRoles", { username: u.username }), writes: true, click: function () {
                    openUserPanel(u, "roles");
                } }).appendTo(actions);
                if (u.disabled) {
                    button({ cls: "cr-user-enable", icon: "fa-check-circle-o", label: t("users.enable", { username: u.username }), writes: true, click: function () {
                        change("PUT", "client-registry/users/" + encodeURIComponent(u.username), { disabled: false }, function () {
                            notifyDone("users.enabled", { username: u.username });
                            fetchSource("users");
                        });
                    } }).appendTo(actions);
                } else {
                    button({ cls: "cr-user-disable", icon: "fa-ban", label: t("users.disable", { username: u.username }), writes: true, click: function () {
                        change("PUT", "client-registry/users/" + encodeURIComponent(u.username), { disabled: true }, function () {
                            notifyDone("users.disabledNotice", { username: u.username });
                            fetchSource("users");
                        });
                    } }).appendTo(actions);
                }
                button({ cls: "cr-user-delete", icon: "fa-trash", label: t("users.deleteUser", { username: u.username }), writes: true, click: function () {
                    openUserPanel(u, "delete");
                } }).appendTo(actions);
            }

            var p = ui.userPanel && ui.userPanel.username === u.username ? ui.userPanel : null;
            var showPanel = p && (p.kind === "roles" || p.kind === "delete") && !fromFlow;
            if (showPanel || ui.expandedCerts[u.username]) {
                var details = $("<tr/>", { class: "cr-user-details", "data-username": u.username }).appendTo(body);
                var cell = $("<td/>", { colspan: 4 }).appendTo(details);
                if (showPanel) {
                    userPanel(u).appendTo(cell);
                }
                if (ui.expandedCerts[u.username] && count > 0) {
                    certificates(u).appendTo(cell);
                }
            }
        });
    }

    // ---- roles, clients, decisions ------------------------------------------------------------------

    /** The workspace's registry-role config node of that name, if any. */
    function roleNode(name) {
        var found = null;
        RED.nodes.eachConfig(function (n) {
            if (!found && n.type === "registry-role" && n.name === name) {
                found = n;
            }
        });
        return found;
    }

    function renderRoles() {
        var section = content.find('.cr-section[data-section="roles"]');
        var box = section.find(".cr-section-content").empty();
        section.find(".cr-count").text(loaded.roles ? data.roles.length : "");
        sectionError(box, "roles");
        if (!loaded.roles) {
            return;
        }
        $("<div/>", { class: "cr-note cr-roles-note" }).text(t("roles.note")).appendTo(box);
        if (data.roles.length === 0) {
            $("<div/>", { class: "cr-empty" }).text(t("roles.none")).appendTo(box);
            return;
        }
        data.roles.slice().sort(function (a, b) {
            return byName(a.name, b.name);
        }).forEach(function (role) {
            var item = $("<div/>", { class: "cr-role", "data-role": role.name }).appendTo(box);
            var head = $("<div/>", { class: "cr-role-name" }).append($("<i/>", { class: "fa fa-id-badge" }), " ", $("<span/>").text(role.name)).appendTo(item);
            var n = roleNode(role.name);
            if (n) {
                $("<a/>", { href: "#", class: "cr-role-edit", role: "button", "aria-label": t("roles.edit", { role: role.name }) })
                    .append($("<i/>", { class: "fa fa-pencil" }))
                    .on("click", function (evt) {
                        evt.preventDefault();
                        RED.editor.editConfig("", "registry-role", n.id);
                    })
                    .appendTo(head);
            }
            var perms = role.permissions || [];
            if (perms.length === 0) {
                $("<div/>", { class: "cr-muted" }).text(t("roles.noPermissions")).appendTo(item);
            }
            perms.forEach(function (p) {
                var line = $("<div/>", { class: "cr-role-permission" }).toggleClass("cr-deny-entry", !!p.deny).appendTo(item);
                $("<span/>", { class: "cr-badge cr-access" }).text((p.deny ? t("roles.deny") + " " : "") + t("roles.access." + (["read", "write", "readWrite"].indexOf(p.access) !== -1 ? p.access : "read"))).appendTo(line);
                $("<span/>", { class: "cr-mono" }).text(p.topic).appendTo(line);
            });
        });
    }

    function renderClients() {
        var section = content.find('.cr-section[data-section="clients"]');
        var box = section.find(".cr-section-content").empty();
        section.find(".cr-count").text(loaded.clients ? data.clients.length : "");
        sectionError(box, "clients");
        if (!loaded.clients) {
            return;
        }
        if (data.clients.length === 0) {
            $("<div/>", { class: "cr-empty" }).text(t("clients.none")).appendTo(box);
            return;
        }
        var tbl = table("cr-clients-table", [t("clients.clientId"), t("clients.username"), t("clients.address")]).appendTo(box);
        data.clients.forEach(function (c) {
            var row = $("<tr/>", { class: "cr-client-row", "data-client-id": c.clientId, "data-username": c.username || "" }).appendTo(tbl.find("tbody"));
            $("<td/>", { class: "cr-mono" }).text(c.clientId).appendTo(row);
            $("<td/>").text(c.username || "–").appendTo(row);
            $("<td/>", { class: "cr-mono" }).text(c.address || "").appendTo(row);
        });
    }

    function renderAudit() {
        var section = content.find('.cr-section[data-section="audit"]');
        var box = section.find(".cr-section-content").empty();
        sectionError(box, "audit");
        if (!loaded.audit) {
            return;
        }
        if (data.audit.length === 0) {
            $("<div/>", { class: "cr-empty" }).text(t("audit.none")).appendTo(box);
            return;
        }
        var tbl = table("cr-audit-table", [t("audit.at"), t("audit.action"), t("audit.username"), t("audit.by")]).appendTo(box);
        data.audit.forEach(function (e) {
            var row = $("<tr/>", { class: "cr-audit-row", "data-action": e.action, "data-username": e.username || "" }).appendTo(tbl.find("tbody"));
            $("<td/>", { title: fullTime(e.at) }).text(shortTime(e.at)).appendTo(row);
            var known = ["approved", "denied", "expired", "user-created", "user-updated", "user-deleted", "certificate-revoked", "window-opened", "window-closed"];
            $("<td/>", { class: "cr-audit-action" }).text(known.indexOf(e.action) !== -1 ? t("audit.actions." + e.action) : e.action).appendTo(row);
            $("<td/>").text(e.username || "").appendTo(row);
            $("<td/>").text(e.by || "").appendTo(row);
        });
    }

    /** Renders what shows the data of one source (role names appear in the allow and user panels too). */
    function renderFor(name) {
        if (!content) {
            return;
        }
        var renderers = {
            state: [renderWindow, renderState],
            requests: [renderRequests],
            users: [renderUsers],
            roles: [renderRoles, renderRequests, renderUsers],
            clients: [renderClients],
            audit: [renderAudit]
        }[name] || [];
        renderers.forEach(function (render) {
            render();
        });
    }

    function renderAll() {
        if (!content) {
            return;
        }
        renderWindow();
        renderState();
        renderRequests();
        renderUsers();
        renderRoles();
        renderClients();
        renderAudit();
        content.find(".cr-ca-download").prop("disabled", false);
    }

    // ---- the tab ------------------------------------------------------------------------------------

    function section(name, extra) {
        var s = $("<div/>", { class: "cr-section", "data-section": name });
        var header = $("<div/>", { class: "cr-section-header", role: "button", tabindex: 0, "aria-expanded": "true" }).appendTo(s);
        $("<i/>", { class: "fa fa-angle-down cr-section-twistie" }).appendTo(header);
        $("<span/>", { class: "cr-section-title" }).text(t(name + ".title")).appendTo(header);
        $("<span/>", { class: "cr-count" }).appendTo(header);
        if (extra) {
            $("<span/>", { class: "cr-section-tools" }).append(extra).appendTo(header);
        }
        var body = $("<div/>", { class: "cr-section-content" }).appendTo(s);
        function toggle() {
            var open = !!ui.collapsed[name];
            if (open) {
                delete ui.collapsed[name];
            } else {
                ui.collapsed[name] = true;
            }
            header.attr("aria-expanded", open ? "true" : "false");
            header.find(".cr-section-twistie").toggleClass("cr-collapsed", !open);
            body.toggle(open);
        }
        header.on("click", function (evt) {
            if ($(evt.target).closest(".cr-section-tools").length === 0) {
                toggle();
            }
        });
        header.on("keydown", function (evt) {
            if (evt.target === header[0] && (evt.key === "Enter" || evt.key === " ")) {
                evt.preventDefault();
                toggle();
            }
        });
        return s;
    }

    function build() {
        content = $("<div/>", { class: "cr-sidebar" });
        var toolbar = $("<div/>", { class: "red-ui-sidebar-header cr-toolbar" }).appendTo(content);
        var toggle = $("<button/>", { type: "button", class: "red-ui-button cr-window-toggle", "data-open": "false" })
            .append($("<i/>", { class: "fa fa-lock" }), " ", $("<span/>", { class: "cr-window-state" }), " ", $("<span/>", { class: "cr-window-remaining" }))
            .on("click", function (evt) {
                evt.preventDefault();
                if (canWrite() && !ui.busy) {
                    toggleWindow();
                }
            })
            .appendTo(toolbar);
        RED.popover.tooltip(toggle, function () {
            return toggle.attr("aria-label");
        });
        $("<span/>", { class: "cr-window-hint" }).appendTo(toolbar);
        button({ cls: "cr-refresh", icon: "fa-refresh", label: t("refresh"), click: fetchAll }).appendTo(toolbar);

        var body = $("<div/>", { class: "cr-body" }).appendTo(content);
        $("<div/>", { class: "cr-error" }).hide().appendTo(body);
        $("<div/>", { class: "cr-readonly" }).append($("<i/>", { class: "fa fa-lock" }), " ", $("<span/>").text(t("readOnly"))).hide().appendTo(body);

        section("requests").appendTo(body);
        section("users", button({
            cls: "cr-user-add",
            icon: "fa-plus",
            text: t("users.add"),
            label: t("users.addTitle"),
            writes: true,
            click: function () {
                ui.addingUser = true;
                renderAll();
            }
        })).appendTo(body);
        var users = body.find('.cr-section[data-section="users"] .cr-section-content');
        $("<div/>", { class: "cr-user-form-holder" }).appendTo(users);
        var filterRow = $("<div/>", { class: "cr-form-row cr-user-filter-row" }).hide().appendTo(users);
        $("<input/>", { type: "search", class: "cr-user-filter", "aria-label": t("users.filter") })
            .attr({ placeholder: t("users.filter"), autocomplete: "off" })
            .on("input", function () {
                renderUsers();
            })
            .appendTo(filterRow);
        $("<div/>", { class: "cr-users-list" }).appendTo(users);
        section("roles").appendTo(body);
        section("clients").appendTo(body);
        section("audit").appendTo(body);

        var footer = $("<div/>", { class: "cr-footer" }).appendTo(body);
        button({ cls: "cr-ca-download", icon: "fa-download", text: t("footer.ca"), label: t("footer.caTitle"), click: downloadCa }).appendTo(footer);
        $("<div/>", { class: "cr-footer-info" }).appendTo(footer);
        renderAll();
    }

    function start() {
        if (!started) {
            started = true;
            fetchAll();
        }
    }

    function init() {
        $("<link/>", { rel: "stylesheet", type: "text/css", href: (RED.settings.apiRootUrl || "") + RESOURCES + "client-registry-sidebar.css" }).appendTo("head");
        build();
        RED.actions.add("client-registry:show-client-registry-tab", function () {
            RED.sidebar.show("client-registry");
        });
        RED.sidebar.addTab({
            id: "client-registry",
            label: t("label"),
            name: t("name"),
            iconClass: "fa fa-id-card-o",
            action: "client-registry:show-client-registry-tab",
            content: content,
            enableOnEdit: true,
            onchange: function () {
                start();
            }
        });
        RED.comms.subscribe(UPDATE_TOPIC, onUpdate);
        setInterval(tick, 1000);
        // a deploy changes users and roles defined in the flows
        RED.events.on("deploy", function () {
            if (started) {
                ["users", "roles", "state"].forEach(fetchSource);
            }
        });
        // role config nodes appear and disappear in the workspace: the roles' edit links follow
        ["nodes:add", "nodes:remove"].forEach(function (evt) {
            RED.events.on(evt, function (n) {
                if (started && n && n.type === "registry-role") {
                    renderRoles();
                }
            });
        });
    }

    /** The script is loaded while the editor loads the nodes: wait until the editor is up. */
    if (RED.sidebar && RED.comms && RED.events) {
        if ($("#red-ui-sidebar-content").length) {
            init();
        } else {
            $(init);
        }
    }
})();
