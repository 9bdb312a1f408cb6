/** Where the backend API is mounted (server/http/app.ts). */
export const BACKEND_BASE_PATH = '/backend/v1';
