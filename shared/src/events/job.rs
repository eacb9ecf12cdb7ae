//! Job-progress messages (the system that replaced polling
//! `/api/v1/characters/jobs/:jobId`). They travel as unnamed `data:` events
//! tagged by a `type` field, exactly as that system's clients parse them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SseEvent;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Waiting,
    Active,
    Completed,
    Failed,
}

impl JobStatus {
    /// `completed` and `failed` end the job's stream.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Failed)
    }
}

/// `{jobId, message}`: the stream is open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobConnected {
    pub job_id: String,
    pub message: String,
}

/// A job's state: the payload of `initial_status` and `job_update`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    pub job_id: String,
    pub status: JobStatus,
    #[serde(default)]
    pub progress: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// One message of a job stream, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobMessage {
    Connected(JobConnected),
    InitialStatus(JobState),
    JobUpdate(JobState),
}

impl SseEvent for JobMessage {
    const NAME: &'static str = "message";
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::test_support::assert_shape;
    use serde_json::json;

    fn state(status: JobStatus, progress: u8) -> JobState {
        JobState {
            job_id: "123".into(),
            status,
            progress,
            result: None,
            failed_reason: None,
            started_at: None,
            completed_at: None,
            timestamp: None,
        }
    }

    #[test]
    fn documented_job_messages() {
        assert_shape(
            &JobMessage::Connected(JobConnected {
                job_id: "123".into(),
                message: "Connected to job status stream".into(),
            }),
            json!({"type": "connected", "jobId": "123", "message": "Connected to job status stream"}),
        );
        let mut initial = state(JobStatus::Active, 40);
        initial.started_at = Some("2025-01-24T10:00:00Z".into());
        assert_shape(
            &JobMessage::InitialStatus(initial),
            json!({"type": "initial_status", "jobId": "123", "status": "active", "progress": 40,
                   "startedAt": "2025-01-24T10:00:00Z"}),
        );
        let mut update = state(JobStatus::Active, 60);
        update.timestamp = Some("2025-01-24T10:00:05Z".into());
        assert_shape(
            &JobMessage::JobUpdate(update),
            json!({"type": "job_update", "jobId": "123", "status": "active", "progress": 60,
                   "timestamp": "2025-01-24T10:00:05Z"}),
        );
        let mut done = state(JobStatus::Completed, 100);
        done.result = Some(
            json!({"characterId": "abc123", "displayId": "char-123", "name": "Character Name"}),
        );
        done.completed_at = Some("2025-01-24T10:00:10Z".into());
        assert_shape(
            &JobMessage::JobUpdate(done),
            json!({"type": "job_update", "jobId": "123", "status": "completed", "progress": 100,
                   "result": {"characterId": "abc123", "displayId": "char-123", "name": "Character Name"},
                   "completedAt": "2025-01-24T10:00:10Z"}),
        );
    }

    #[test]
    fn documented_failure_decodes() {
        // The failure example in the docs has no progress field.
        let msg = JobMessage::from_data(
            r#"{"type":"job_update","jobId":"123","status":"failed","failedReason":"Error message","result":{"error":"Error message"}}"#,
        )
        .expect("decodes");
        let JobMessage::JobUpdate(s) = msg else {
            panic!("expected job_update")
        };
        assert!(s.status.is_final());
        assert_eq!(s.failed_reason.as_deref(), Some("Error message"));
    }
}
