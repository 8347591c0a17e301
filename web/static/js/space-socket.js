// The socket.io connection to /spaces (see docs/spaces.md), shared by the space pages.

import { io } from "/static/vendor/socket.io.esm.min.js";

/** A socket to the /spaces namespace, authenticated by the session cookie. */
export function connectSpaces() {
  return io("/spaces", { transports: ["websocket"], withCredentials: true });
}

/** Sends `event` and resolves to the server's acknowledgement, rejecting on an error answer. */
export function call(socket, event, payload) {
  return new Promise((resolve, reject) => {
    socket.timeout(15000).emit(event, payload, (timeout, reply) => {
      if (timeout) {
        reject(new Error("The server did not answer in time."));
      } else if (!reply || reply.ok !== true) {
        const error = new Error((reply && reply.error && reply.error.message) || "The server refused this.");
        error.code = reply && reply.error ? reply.error.code : "error";
        reject(error);
      } else {
        resolve(reply);
      }
    });
  });
}
