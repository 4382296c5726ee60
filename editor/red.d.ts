/**
 * The part of Node-RED's editor API (window.RED, as Node-RED's editor-client package defines it)
 * that the client registry's editor code uses, on Node-RED 4 and 5.
 */

interface RedNodeDef {
  id: string;
  type: string;
  name?: string;
  changed?: boolean;
}

interface RedStackEntry {
  title: string;
  expanded?: boolean;
  collapsible?: boolean;
  onexpand?: () => void;
  /** filled in by RED.stack */
  container: JQuery;
  header: JQuery;
  content: JQuery;
  contentWrap: JQuery;
  isExpanded(): boolean;
  expand(): void;
  collapse(): void;
  toggle(): boolean;
}

interface RedStack {
  add(entry: Pick<RedStackEntry, 'title' | 'expanded' | 'collapsible' | 'onexpand'>): RedStackEntry;
}

interface RedSidebarTab {
  id: string;
  label: string;
  name: string;
  iconClass: string;
  action?: string;
  content: JQuery;
  enableOnEdit?: boolean;
  onchange?: () => void;
}

interface RedPluginDefinition {
  type?: string;
  onadd?: () => void;
}

interface RedEditorApi {
  _(key: string, params?: Record<string, unknown>): string;
  notify(message: string, options: string | { type: string; timeout?: number; id?: string }): void;
  utils: { sanitize(text: string): string };
  popover: { tooltip(target: JQuery, content: string | (() => string | undefined)): void };
  user?: { hasPermission?(permission: string): boolean };
  settings: {
    apiRootUrl?: string;
    get<T>(key: string, defaultIfUndefined?: T): T;
    set(key: string, value: unknown): void;
  };
  nodes: {
    eachConfig(cb: (n: RedNodeDef) => void): void;
    getType(type: string): { _(key: string, params?: Record<string, unknown>): string } | undefined;
  };
  editor: { editConfig(name: string, type: string, id: string): void };
  actions: { add(name: string, handler: () => void): void };
  sidebar: { addTab(tab: RedSidebarTab): void; show(id: string): void };
  comms: {
    subscribe(topic: string, cb: (topic: string, msg: unknown) => void): void;
    unsubscribe(topic: string, cb: (topic: string, msg: unknown) => void): void;
  };
  events: { on(event: string, cb: (arg?: unknown) => void): void };
  stack: { create(options: { container: JQuery; fill?: boolean; singleExpanded?: boolean }): RedStack };
  plugins: { registerPlugin(id: string, definition: RedPluginDefinition): void };
}

declare const RED: RedEditorApi;

/** jQuery widgets of Node-RED's editor used by the node edit dialogs. */
interface JQuery {
  editableList(options: Record<string, unknown>): JQuery;
  editableList(method: 'items'): JQuery;
  editableList(method: 'addItem', data: Record<string, unknown>): JQuery;
  autoComplete(options: { minLength?: number; search(value: string): string[] }): JQuery;
}
