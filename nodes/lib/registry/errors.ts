/** An error with the HTTP status it maps to (the admin routes and the REST flow answer with it). */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}
